import{j as e,T as r}from"./index-C5ChdGh-.js";function s(){return e.jsx(r,{order:2,children:"Tokens"})}export{s as default};
