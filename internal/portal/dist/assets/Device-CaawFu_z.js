import{j as e,T as r}from"./index-C5ChdGh-.js";function i(){return e.jsx(r,{order:2,children:"Device"})}export{i as default};
