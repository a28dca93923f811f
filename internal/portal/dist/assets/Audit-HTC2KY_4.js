import{j as t,T as r}from"./index-C5ChdGh-.js";function i(){return t.jsx(r,{order:2,children:"Audit"})}export{i as default};
